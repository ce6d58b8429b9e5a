"""The baseline for bench/throughput.py: a bare Flask hello world, served by the same gunicorn settings.

gunicorn -c gunicorn.conf.py bench.hello_app:app
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "Hello, World!"
