"""The Prometheus exporter-toolkit web configuration (``--web.config.file``): TLS and basic
authentication for ``/metrics`` and every other endpoint, in the file format node_exporter,
Prometheus and Alertmanager read, so the file a user already runs works here as it is.

Unknown keys are refused, as exporter-toolkit refuses them. One key is cbmon's own:
``basic_auth_excluded_paths`` lists paths served without credentials (``[/healthz, /readyz]``
for a kubelet's or a load balancer's probes, which cannot send a password), under the name
exporter-toolkit's maintainers proposed for it; exporter-toolkit itself would refuse it.
Relative paths are read from the file's own directory. Passwords are bcrypt hashes
(``htpasswd -nBC 10 "" | tr -d ':\\n'``); a hash is checked once per distinct credential and
the result cached, since bcrypt is slow on purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
import threading
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cbmon.errors import ConfigError

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go's names of the TLS 1.2 suites exporter-toolkit users write, as OpenSSL names them.
_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
}
_CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
           "X25519": "X25519"}  # fmt: skip
# The response headers exporter-toolkit lets a user set, and the values it allows.
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSServerConfig(_Strict):
    cert_file: str = ""
    key_file: str = ""
    client_auth_type: Literal[tuple(_CLIENT_AUTH)] = ""  # type: ignore[valid-type]
    client_ca_file: str = ""
    min_version: Literal[tuple(_VERSIONS)] = "TLS12"  # type: ignore[valid-type]
    max_version: Literal[tuple(_VERSIONS)] = "TLS13"  # type: ignore[valid-type]
    cipher_suites: tuple[Literal[tuple(_CIPHERS)], ...] = ()  # type: ignore[valid-type]
    curve_preferences: tuple[Literal[tuple(_CURVES)], ...] = ()  # type: ignore[valid-type]
    prefer_server_cipher_suites: bool = True


class HTTPServerConfig(_Strict):
    http2: bool = True  # accepted for compatibility; cbmon answers HTTP/1.1
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if name not in _HEADERS:
                raise ValueError(f"HTTP header {name!r} can not be configured")
            allowed = _HEADERS[name]
            if allowed is not None and value not in allowed:
                raise ValueError(f"invalid value for {name}; expected one of {list(allowed)}")
        return headers


Bcrypt = Annotated[str, Field(pattern=r"^\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}$")]
# A path as a request names it: no query, no fragment, no spaces.
UrlPath = Annotated[str, Field(pattern=r"^/[^?#\s]*$")]


class WebConfig(_Strict):
    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = HTTPServerConfig()
    basic_auth_users: dict[str, Bcrypt] = Field(default_factory=dict)
    basic_auth_excluded_paths: tuple[UrlPath, ...] = ()

    @property
    def tls(self) -> bool:
        tls = self.tls_server_config
        return tls is not None and bool(
            tls.cert_file or tls.key_file or tls.client_ca_file or tls.client_auth_type
        )


def load(path: Path) -> WebConfig:
    """Read and check the file; every problem is one line naming the file and the key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--web.config.file {path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--web.config.file {path}: must be a mapping of keys to values")
    try:
        config = WebConfig.model_validate(data)
    except ValidationError as exc:
        item = exc.errors()[0]
        where = ".".join(str(part) for part in item["loc"])
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        if where.startswith("basic_auth_users."):
            message = "must be a bcrypt hash (htpasswd -nBC 10 '' | tr -d ':\\n')"
        elif where.startswith("basic_auth_excluded_paths."):
            message = "must be a path such as /healthz (no query, no spaces)"
        raise ConfigError(f"--web.config.file {path}: {where}: {message}") from None
    if config.tls:
        context(config, path.parent)  # a missing or wrong certificate is found now
    return config


def context(config: WebConfig, base: Path) -> ssl.SSLContext | None:
    """The server's TLS context, or None when TLS is not configured."""
    tls = config.tls_server_config
    if tls is None or not config.tls:
        return None
    if not tls.cert_file or not tls.key_file:
        raise ConfigError("--web.config.file: tls_server_config needs both cert_file and key_file")
    auth = _CLIENT_AUTH[tls.client_auth_type]
    if tls.client_ca_file and auth is ssl.CERT_NONE:
        raise ConfigError(
            "--web.config.file: tls_server_config.client_ca_file needs a client_auth_type"
        )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = _VERSIONS[tls.min_version]
    server.maximum_version = _VERSIONS[tls.max_version]
    try:
        server.load_cert_chain(base / tls.cert_file, base / tls.key_file)
        if tls.client_ca_file:
            server.load_verify_locations(base / tls.client_ca_file)
        if tls.cipher_suites:
            server.set_ciphers(":".join(_CIPHERS[name] for name in tls.cipher_suites))
        if tls.curve_preferences:
            server.set_ecdh_curve(_CURVES[tls.curve_preferences[0]])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--web.config.file: tls_server_config: {exc}") from None
    server.verify_mode = auth
    if tls.prefer_server_cipher_suites:
        server.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    return server


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes, caching what passed;
    the ``excluded`` paths need none."""

    def __init__(self, users: dict[str, str], excluded: tuple[str, ...] = ()) -> None:
        self.users = {name: hashed.encode() for name, hashed in users.items()}
        self.excluded = frozenset(excluded)
        self._passed: set[bytes] = set()
        self._lock = threading.Lock()
        self._dummy: bytes | None = None  # checked for unknown users: timing hides who exists

    @property
    def enabled(self) -> bool:
        return bool(self.users)

    def allows(self, header: str | None, path: str | None = None) -> bool:
        import bcrypt

        if not self.users or path in self.excluded:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            if any(hmac.compare_digest(key, known) for known in self._passed):
                return True
        hashed = self.users.get(user)
        if hashed is None:
            if self._dummy is None:
                self._dummy = bcrypt.hashpw(b"cbmon", bcrypt.gensalt(10))
            bcrypt.checkpw(password.encode(), self._dummy)
            return False
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:  # a hash bcrypt cannot read: nobody gets in with it
            return False
        if ok:
            with self._lock:
                self._passed.add(key)
        return ok
