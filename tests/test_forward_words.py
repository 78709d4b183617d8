"""The head line's forward words: units and the fallback mark."""

from __future__ import annotations

from optscan.web.presentation import forward_words


def test_forward_words_name_every_expiration_in_percent_per_year() -> None:
    words = forward_words(
        {
            "2025-08-29": {"forward": 232.54, "carry": -0.456, "source": "market", "pairs": 3},
            "2025-08-22": {"forward": 231.819, "carry": 0.0516, "source": "market", "pairs": 3},
            "2025-09-05": {"forward": 232.0, "carry": 0.04, "source": "fallback", "pairs": 0},
        }
    )
    assert words == {
        "nearest": "231.82",
        "all": "2025-08-22: 231.82 (carry +5.2 %/yr); 2025-08-29: 232.54 (carry -45.6 %/yr);"
        " 2025-09-05: 232.00 (carry +4.0 %/yr, spot fallback)",
    }
    assert forward_words({}) is None and forward_words(None) is None
