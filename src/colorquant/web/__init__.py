"""The web app: one offline page and a small HTTP API over :func:`colorquant.quantize`.

Needs the ``web`` extra (FastAPI, uvicorn, python-multipart): ``pip install "colorquant[web]"``.
"""

from .app import WebSettings, create_app

__all__ = ["create_app", "WebSettings"]
