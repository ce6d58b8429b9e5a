"""gunicorn settings for Foyer: `gunicorn -c gunicorn.conf.py` (see docs/deploy.md).

Every value can be overridden on the command line. The app is imported in each worker after the fork
(no preload), so every worker opens its own database engine and connection pool.
"""

import multiprocessing
import os

wsgi_app = "wsgi:app"
bind = os.environ.get("FOYER_BIND", "127.0.0.1:8000")
# Sync workers: Foyer's requests are short and every slow Microsoft call goes through the outbox.
worker_class = "sync"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
preload_app = False
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so a slow leak can never grow without bound. Not often: a new worker
# imports the app and renders its first pages cold, which shows as a latency spike under load
# (workers stay near 106 MB however long they run; see docs/performance.md).
max_requests = 20000
max_requests_jitter = 2000
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Personal links (/r/…, /j/…, /invitation/…, any route with a <token>) never reach the access log.
logger_class = "app.logs.RedactingGunicornLogger"
# Behind a reverse proxy Foyer reads X-Forwarded-* through ProxyFix (PROXY_FIX_HOPS), not gunicorn.
forwarded_allow_ips = "127.0.0.1"
