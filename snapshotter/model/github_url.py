"""`githubConfigUrl` parsed the way ARC parses it.

ARC (`ParseGitHubConfigFromURL`) trims slashes, splits the path and accepts one
segment (organization), `enterprises/<e>` (enterprise) or two segments
(organization + repository), on any host. Its quirks are kept on purpose: a `.git`
suffix stays part of the repository and `https://host/enterprises` is an
organization named "enterprises".
"""

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class GitHubScope:
    """Where a runner pool is registered at GitHub; '' for the parts that do not apply."""

    host: str
    owner: str = ""
    repo: str = ""
    enterprise: str = ""


class InvalidConfigUrl(ValueError):
    """The URL does not point to an enterprise, organization or repository."""


def parse_github_config_url(url: str) -> GitHubScope:
    """Return the scope of `url` or raise InvalidConfigUrl naming what is wrong."""
    try:
        parts = urlsplit(url.strip().strip("/"))
        port = parts.port
    except ValueError as e:
        raise InvalidConfigUrl(f"not a URL: {e}") from e
    if not parts.hostname:
        raise InvalidConfigUrl("no host (expected e.g. https://github.com/<org>)")
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    segments = parts.path.strip("/").split("/")
    if len(segments) == 1 and segments[0]:
        return GitHubScope(host=host, owner=segments[0])
    if len(segments) == 2 and all(segments):  # noqa: PLR2004 - owner/repo
        if segments[0].lower() == "enterprises":
            return GitHubScope(host=host, enterprise=segments[1])
        return GitHubScope(host=host, owner=segments[0], repo=segments[1])
    raise InvalidConfigUrl("should point to an enterprise, organization or repository")
