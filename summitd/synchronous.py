"""Reading already-fired Deferreds: summitctl and tests run the server on a synchronous
database, where every Deferred has fired by the time the call returns."""

from twisted.python.failure import Failure


def result_of(d):
    """The result of an already-fired Deferred (raises its failure; AssertionError if unfired)."""
    results = []
    d.addBoth(results.append)
    if not results:
        raise AssertionError(f"{d!r} has not fired")
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]
