"""How negative a customer's words are: VADER, a lexicon-and-rules sentiment model.

VADER (``vaderSentiment``) is made for short informal text like chat turns, runs locally and is
deterministic. Its compound score is in [-1, 1]; :func:`negativity` is the negative part of it. A turn
can only score below 0 when it has a word of negative valence or a negation ("not helpful"); most
support turns have neither ("for 7 pm, please"), and they are answered without running VADER: the
same result for a fraction of the cost.
"""

from __future__ import annotations

import string
from functools import lru_cache

from vaderSentiment.vaderSentiment import NEGATE, SentimentIntensityAnalyzer

_ANALYZER = SentimentIntensityAnalyzer()
#: Words that can make a turn's compound score negative: negative valence, or a negation (VADER also
#: flips after "least").
_CAN_BE_NEGATIVE = frozenset(w for w, valence in _ANALYZER.lexicon.items() if valence < 0) | frozenset(NEGATE) | {
    "least"}
_PUNCT = string.punctuation

#: A customer turn at or below this compound score is negative ("this is useless", "I don't care, whatever").
NEGATIVE = -0.35


@lru_cache(maxsize=65536)
def negativity(text: str) -> float:
    """``min(0, VADER compound)`` of ``text``, in [-1, 0].

    VADER runs only when a word, as it looks words up (outer punctuation stripped unless that leaves two
    characters or fewer, lower-cased), can make the score negative.
    """
    if text.isascii():  # lower-cased whole: on ASCII that is each word's own lower-casing, stripped or not
        for word in text.lower().split():
            stripped = word.strip(_PUNCT)
            if (word if len(stripped) <= 2 else stripped) in _CAN_BE_NEGATIVE:
                break
        else:
            return 0.0
    return min(0.0, float(_ANALYZER.polarity_scores(text)["compound"]))
