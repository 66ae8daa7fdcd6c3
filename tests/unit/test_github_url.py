"""githubConfigUrl parsing, matching ARC's ParseGitHubConfigFromURL on any host."""

import pytest

from snapshotter.model.github_url import GitHubScope, InvalidConfigUrl, parse_github_config_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/acme-corp", GitHubScope("github.com", owner="acme-corp")),
        (
            "https://github.com/acme-corp/payments-api",
            GitHubScope("github.com", owner="acme-corp", repo="payments-api"),
        ),
        ("https://github.com/enterprises/acme", GitHubScope("github.com", enterprise="acme")),
        ("https://github.com/Enterprises/acme", GitHubScope("github.com", enterprise="acme")),
        # one segment "enterprises" is an organization of that name, as in ARC
        ("https://github.com/enterprises", GitHubScope("github.com", owner="enterprises")),
        ("https://ghes.example.com/platform", GitHubScope("ghes.example.com", owner="platform")),
        (
            "https://ghes.example.com/platform/payments-api",
            GitHubScope("ghes.example.com", owner="platform", repo="payments-api"),
        ),
        (
            "https://ghes.example.com/enterprises/acme",
            GitHubScope("ghes.example.com", enterprise="acme"),
        ),
        ("https://acme.ghe.com/acme-corp", GitHubScope("acme.ghe.com", owner="acme-corp")),
        ("https://github.com/acme-corp/", GitHubScope("github.com", owner="acme-corp")),
        (
            "https://github.com/acme-corp/repo///",
            GitHubScope("github.com", owner="acme-corp", repo="repo"),
        ),
        # a .git suffix is kept, as ARC does
        (
            "https://github.com/acme-corp/repo.git",
            GitHubScope("github.com", owner="acme-corp", repo="repo.git"),
        ),
        (
            "https://ghes.example.com:8443/platform",
            GitHubScope("ghes.example.com:8443", owner="platform"),
        ),
        ("https://bot:token@github.com/acme", GitHubScope("github.com", owner="acme")),
        ("https://github.com/Acme-Corp?x=1#frag", GitHubScope("github.com", owner="Acme-Corp")),
    ],
)
def test_parses(url: str, expected: GitHubScope) -> None:
    assert parse_github_config_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com",
        "https://github.com/",
        "https://host/github/org/repo",  # GHES behind a path prefix: 3 segments
        "https://github.com/a//b",
        "github.com/acme",  # no scheme: no host
        "not a url",
        "https://[::1/acme",
        "https://github.com:99999/acme",
    ],
)
def test_unparseable(url: str) -> None:
    with pytest.raises(InvalidConfigUrl):
        parse_github_config_url(url)
