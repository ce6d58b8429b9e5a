"""Flask extensions, created unbound; `create_app` calls `init_app` on each."""

from flask_compress import Compress
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect
from htmx_flask import Htmx

from app.models.base import db

csrf = CSRFProtect()
login_manager = LoginManager()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
htmx = Htmx()
compress = Compress()

__all__ = ["compress", "csrf", "db", "htmx", "limiter", "login_manager"]
