"""The baselines for the benches: bare Flask, served by the same gunicorn settings as Foyer.

gunicorn -c gunicorn.conf.py bench.hello_app:app

`/` is hello world (bench/throughput.py). `/events/<slug>`, its `/register` and `/registered` are the
bare-Flask registration flow (bench/registration_flows.py): the least a Flask app does for one sign-up
through a form, with no database, templates or extensions: a page with a form token kept in the signed
session cookie, a POST that checks the token and the fields and answers 303, and the result page read
from the session. It answers the same paths and words as Foyer, so one client measures both.
"""

import os
import secrets
from html import escape

from flask import Flask, abort, redirect, request, session, url_for

app = Flask(__name__)
# Shared by every worker (each imports this after the fork): the bench's SECRET_KEY, as Foyer's.
app.secret_key = os.environ.get("SECRET_KEY") or secrets.token_hex(32)

FIELDS = ("first_name", "last_name", "email", "timezone", "consent")


@app.get("/")
def hello() -> str:
    return "Hello, World!"


@app.get("/events/<slug>")
def event_GET(slug: str) -> str:
    token = session.setdefault("csrf_token", secrets.token_urlsafe(32))
    inputs = "".join(f'<label>{name} <input name="{name}"></label>' for name in FIELDS)
    return (f"<!doctype html><title>{escape(slug)}</title><h1>{escape(slug)}</h1>"
            f'<form method="post" action="{url_for("register_POST", slug=slug)}">'
            f'<input name="csrf_token" type="hidden" value="{token}">{inputs}<button>Register</button></form>')


@app.post("/events/<slug>/register")
def register_POST(slug: str):
    if request.form.get("csrf_token") != session.get("csrf_token"):
        abort(400)
    if any(not request.form.get(name, "").strip() for name in FIELDS):
        abort(422)
    session["result"] = {"email": request.form["email"][:320]}
    return redirect(url_for("registered_GET", slug=slug), code=303)


@app.get("/events/<slug>/registered")
def registered_GET(slug: str) -> str:
    result = session.get("result") or abort(404)
    return f"<!doctype html><title>Registered</title><p>Check your inbox: {escape(result['email'])}</p>"
