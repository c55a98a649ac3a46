"""Cloudflare's error pages in front of a relay (its 5xx error reference), by status: whether the
relay got the request, and so whether the image may be drawn (and billed) all the same."""

UNREACHED = {
    521: "the relay's server refused the connection (Cloudflare 521)",
    522: "the connection to the relay's server timed out (Cloudflare 522)",
    523: "the relay's server could not be reached (Cloudflare 523)",
}
MAY_BE_DRAWN = {
    520: "the relay's server answered its gateway with something it could not read (Cloudflare 520)",
    524: "the relay's gateway gave up waiting for its answer (Cloudflare 524, about 100 s)",
}
DRAWN_BEHIND_GATEWAY = frozenset(MAY_BE_DRAWN)
"""Cloudflare's pages for a request the relay had: trying again may pay twice."""
