"""Settlement API routes, included under /api/ by config/api_urls.py (names live in the 'api' namespace)."""

urlpatterns: list = []
