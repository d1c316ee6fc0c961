"""Full-text search terms (XEP-0431, ``{urn:xmpp:fulltext:0}fulltext``), one meaning for every
backend.

What a search means: the text is split into words at spaces; every word must occur
in the message body (AND). A word is compared token by token the way SQLite's FTS5
``unicode61 remove_diacritics 2`` tokenizer sees text: letters and digits form
tokens, everything else separates them, case and diacritics are ignored (so
"Cafe" finds "café"). A word that itself splits into several tokens ("e-mail")
must match them in sequence (a phrase). A word ending in ``*`` is a prefix
("hol*" finds "holiday"). The memory backend matches with ``matches``; the SQLite
backend turns the same terms into an FTS5 expression (``fts5_expression``), so
user input never reaches the FTS5 query syntax.
"""

import unicodedata
from dataclasses import dataclass

#: More words than this in one search is refused (bad-request): each is an index lookup.
MAX_TERMS = 16


@dataclass(frozen=True)
class Term:
    """One search word: its tokens (a phrase when more than one) and whether the last
    token is a prefix."""

    tokens: tuple
    prefix: bool = False


def _token_char(ch):
    # unicode61's default token characters: the categories L*, N* and Co.
    return ch.isalnum() or unicodedata.category(ch) == "Co"


def fold(text):
    """Lower case without diacritics (NFD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text):
    """The tokens of a text, folded, in order."""
    found = []
    current = []
    for ch in fold(text):
        if _token_char(ch):
            current.append(ch)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


def parse_search(text):
    """The Terms of a search text; ValueError when it has no word or too many."""
    terms = []
    for word in text.split():
        prefix = word.endswith("*")
        word_tokens = tuple(tokens(word))
        if word_tokens:
            terms.append(Term(word_tokens, prefix))
    if not terms:
        raise ValueError("the search has no words")
    if len(terms) > MAX_TERMS:
        raise ValueError(f"a search has at most {MAX_TERMS} words")
    return tuple(terms)


def _term_at(term, doc, start):
    last = len(term.tokens) - 1
    for offset, token in enumerate(term.tokens):
        word = doc[start + offset]
        if word != token and not (offset == last and term.prefix and word.startswith(token)):
            return False
    return True


def matches(terms, doc_tokens):
    """Whether a document (its tokens) matches every term."""
    for term in terms:
        span = len(term.tokens)
        if not any(_term_at(term, doc_tokens, i) for i in range(len(doc_tokens) - span + 1)):
            return False
    return True


def fts5_expression(terms):
    """An FTS5 MATCH expression for the terms: quoted phrases joined by AND. Tokens are
    letters and digits only, so nothing in them is FTS5 syntax."""
    return " AND ".join(
        '"' + " ".join(term.tokens) + '"' + ("*" if term.prefix else "") for term in terms)
