"""Small texts about the config for the CLI and the checks: a URL as shown, loopback hosts, where a token goes, a
[[sources]] block to append."""

from __future__ import annotations

import ipaddress
import json
import re

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
# scheme://userinfo@ : the authority ends at the first / ? # (RFC 3986), userinfo at its last "@".
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#\s]*@")


def public_url(text: str) -> str:
    """`text` with the userinfo (user:password@) of every URL in it removed: the only way a source URL is shown."""
    return _USERINFO.sub(r"\1", text)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the loopback names: traffic that never leaves this machine."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_env_var(source_name: str) -> str:
    return "APPROVAL_CONSOLE_TOKEN_" + source_name.upper().replace("-", "_")


def token_fix(source_name: str) -> str:
    """How the operator gives a source a new token: what an auth failure tells them to do."""
    return (
        f"run 'approval-console sources token {source_name}' to store a new token in the keyring,"
        f" or set {token_env_var(source_name)}"
    )


def no_keyring_fix(source_name: str) -> str:
    """What to do when a token cannot be stored because this machine has no keyring."""
    return f"this machine has no usable keyring; set the environment variable {token_env_var(source_name)} instead"


def source_block(name: str, url: str, kind: str, *, allow_insecure_http: bool = False) -> str:
    """A [[sources]] block to append to a config file (json.dumps quoting is valid TOML for these strings)."""
    insecure = "allow_insecure_http = true\n" if allow_insecure_http else ""
    return f"\n[[sources]]\nname = {json.dumps(name)}\nkind = {json.dumps(kind)}\nurl = {json.dumps(url)}\n{insecure}"
