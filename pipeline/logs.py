"""One logging setup for the job: human text by default, JSON lines with `--log-format json`.

Every event of operational interest is logged once, through `event(logger,
level, message, **fields)`, with its facts as fields (source, partition,
offset, epoch, error class...). Text puts them after the message as
`key=value`; JSON puts them beside `ts`, `level`, `logger` and `msg`, one
object per line, so a log shipper needs no parsing rules.

Secrets never reach a log line: a field whose name says it is a secret
(`is_secret`) is masked, and the values of the
`SHOPGUARD_KAFKA_*` secret variables are blanked out of every message.
librdkafka's own lines come through the `shopguard.kafka.client` logger
(`pipeline.kafka.quiet`) at warning level and above, minus its notes about
settings that only one client kind reads.

>>> import io
>>> out = io.StringIO()
>>> setup_logging("json", stream=out, environ={"SHOPGUARD_KAFKA_SASL_PASSWORD": "hunter2"})
>>> event(logging.getLogger("shopguard.test"), logging.WARNING, "login hunter2 failed", partition=3,
...       sasl_password="hunter2")
>>> record = json.loads(out.getvalue())
>>> record["msg"], record["partition"], record["sasl_password"], record["level"]
('login **** failed', 3, '****', 'warning')
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Mapping, TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
SECRET_WORDS = ("password", "secret", "jaas", "token", "key.pem", "key_pem", "credential")
MASK = "****"
# librdkafka warns about every shared setting that one client kind ignores.
NOISE = ("CONFWARN",)
_current = {"fmt": "text", "level": "info"}


def is_secret(key: str) -> bool:
    """Whether a setting or field holds a secret (its value is never printed).

    >>> is_secret("sasl.password"), is_secret("ssl.key.pem"), is_secret("security.protocol")
    (True, True, False)
    """
    return any(word in key.lower() for word in SECRET_WORDS)


def event(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log one event with its facts as fields (`extra` under one key, so names never clash)."""
    logger.log(level, message, extra={"fields": fields})


class _Scrub(logging.Filter):
    """Masks secret fields and blanks secret values out of messages."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if any(word in record.getMessage() for word in NOISE) and record.name.startswith("shopguard.kafka.client"):
            return False
        fields = getattr(record, "fields", None)
        if fields:
            record.fields = {k: MASK if is_secret(k) else v for k, v in fields.items()}
        if self.secrets:
            text = record.getMessage()
            for secret in self.secrets:
                text = text.replace(secret, MASK)
            record.msg, record.args = text, None
        return True


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        tail = "".join(f" {k}={_text(v)}" for k, v in fields.items())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}Z {record.levelname.lower():<7} {record.name}: {record.getMessage()}{tail}"


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (getattr(record, "fields", None) or {}).items():
            line.setdefault(key, value)
        if record.exc_info:  # only bugs log tracebacks; keep them in one JSON line too
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values of the environment's secret Kafka settings (blanked out of every line)."""
    return [v for k, v in environ.items() if k.startswith("SHOPGUARD_KAFKA_") and is_secret(k.replace("_", "."))]


def setup_logging(fmt: str = "text", level: str = "info", *, stream: TextIO | None = None,
                  environ: Mapping[str, str] | None = None) -> None:
    """Route every `shopguard.*` logger (librdkafka's included) to one handler in `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Json() if fmt == "json" else _Text())
    handler.addFilter(_Scrub(secret_values(os.environ if environ is None else environ)))
    root = logging.getLogger("shopguard")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("shopguard.kafka.client").setLevel(logging.WARNING)
    _current.update(fmt=fmt, level=level)


def current_setup() -> tuple[str, str]:
    """(format, level) of the last `setup_logging`: what a child process sets up the same way."""
    return _current["fmt"], _current["level"]
