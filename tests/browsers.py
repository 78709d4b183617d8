"""Open Chromium pages that record what went wrong in them: script errors and CSP violations."""

from __future__ import annotations

from typing import Any

# Each violation the page's Content-Security-Policy reports, as "directive blocked-URI".
CSP_RECORDER = (
    "document.addEventListener('securitypolicyviolation', e =>"
    " (window.__csp = window.__csp || [])"
    ".push(e.violatedDirective + ' ' + e.blockedURI));"
)


def watched_page(browser: Any, width: int, height: int) -> tuple[Any, list[str]]:
    """Open a page that collects script and console errors in the returned list.

    The page also records its CSP violations in window.__csp (read them with csp_reports).
    """
    page = browser.new_page(viewport={"width": width, "height": height})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.add_init_script(CSP_RECORDER)
    return page, problems


def csp_reports(page: Any) -> list[str]:
    """Return the CSP violations the page has recorded so far."""
    return page.evaluate("() => window.__csp || []")
