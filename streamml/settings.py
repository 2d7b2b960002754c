"""Settings: code, then ``STREAMML_*`` environment variables, then a config file.

Precedence, highest first:

1. keyword arguments passed in code (``load_settings(broker=...)``) and
   command-line flags (which the CLI passes as keyword arguments);
2. environment variables ``STREAMML_<FIELD>`` (for example ``STREAMML_BROKER``);
3. the config file: ``$STREAMML_CONFIG`` if set, else ``./streamml.yaml`` or
   ``./streamml.toml`` if present (YAML, TOML or JSON);
4. the defaults below.

>>> s = load_settings(broker="kafka://localhost:9092", config_file=None)
>>> s.broker
'kafka://localhost:9092'
>>> s.kafka_client_config()["bootstrap_servers"]
['localhost:9092']
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamml.errors import ConfigError

DEFAULT_CONFIG_FILES = ("streamml.yaml", "streamml.yml", "streamml.toml", "streamml.json")


class Settings(BaseSettings):
    """Every setting streamml reads. Frozen: pass a new one instead of mutating."""

    model_config = SettingsConfigDict(env_prefix="STREAMML_", frozen=True, extra="forbid")

    broker: str = Field(
        "embedded://.streamml",
        description="embedded://PATH (default ./.streamml) or kafka://HOST:PORT[,HOST:PORT]",
    )
    pipeline: str = Field("demo", description="default pipeline name, the <p> of <p>.<role>")
    state_dir: str = Field(
        ".streamml-state", description="where embedded hosts keep checkpoints of processor state"
    )
    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        "auto",
        description="OS processes a one-host pipeline run (streamml run, streamml demo) "
        "spreads its components over; auto: min(2, usable CPUs)",
    )
    embedded_fsync: bool = Field(
        False,
        description="fsync embedded segments on flush (survives power loss, not only kill -9)",
    )
    # Kafka client security, passed through to kafka-python / aiokafka.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_client_id: str = "streamml"
    kafka_request_timeout_ms: int = 30_000
    checkpoint_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for checkpoints"
    )
    signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key that signs published models; servers and subscribers "
        "refuse models whose signature does not verify with it",
    )

    def kafka_client_config(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python clients (``bootstrap_servers`` included)."""
        from streamml.log import parse_broker_url

        scheme, location = parse_broker_url(self.broker)
        config: dict[str, Any] = {
            "client_id": self.kafka_client_id,
            "security_protocol": self.kafka_security_protocol,
            "request_timeout_ms": self.kafka_request_timeout_ms,
        }
        if scheme == "kafka":
            config["bootstrap_servers"] = [h.strip() for h in location.split(",") if h.strip()]
        optional = {
            "sasl_mechanism": self.kafka_sasl_mechanism,
            "sasl_plain_username": self.kafka_sasl_username,
            "sasl_plain_password": (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            ),
            "ssl_cafile": self.kafka_ssl_cafile,
            "ssl_certfile": self.kafka_ssl_certfile,
            "ssl_keyfile": self.kafka_ssl_keyfile,
        }
        config.update({k: v for k, v in optional.items() if v is not None})
        return config


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML, TOML or JSON settings file into a dict (keys are field names)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror}") from exc
    try:
        if p.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif p.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {p} is not valid: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of settings")
    section = data.get("streamml", data)
    return {str(k).replace("-", "_"): v for k, v in section.items()}


def _default_config_file() -> str | None:
    env = os.environ.get("STREAMML_CONFIG")
    if env:
        return env
    for name in DEFAULT_CONFIG_FILES:
        if Path(name).is_file():
            return name
    return None


def load_settings(config_file: str | None | Literal["auto"] = "auto", **overrides: Any) -> Settings:
    """Build :class:`Settings` with the documented precedence.

    ``config_file="auto"`` looks for ``$STREAMML_CONFIG`` then ``./streamml.yaml``
    (and ``.yml``/``.toml``/``.json``); ``None`` reads no file. ``overrides`` whose
    value is ``None`` are ignored, so CLI flags that were not given do not mask
    the environment.
    """
    path = _default_config_file() if config_file == "auto" else config_file
    file_values = read_config_file(path) if path else {}
    env_names = {name for name in Settings.model_fields if f"STREAMML_{name.upper()}" in os.environ}
    # Environment beats the file: drop file values the environment sets.
    base = {k: v for k, v in file_values.items() if k not in env_names}
    base.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**base)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from exc
