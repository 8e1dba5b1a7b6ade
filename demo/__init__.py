"""The whole-platform demo: demo users, the drug-review and Q&A Datanets, the queued first training run and the reward
epoch (``load_demo``), and ``run_platform``, which starts the web server with a real worker. It sits on top of every
other app and nothing imports it."""
