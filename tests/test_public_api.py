import tierroute


def test_all_is_sorted_and_importable():
    assert tierroute.__all__ == sorted(tierroute.__all__)
    for name in tierroute.__all__:
        assert hasattr(tierroute, name), name


def test_every_error_is_in_one_tree():
    errors = [getattr(tierroute, n) for n in tierroute.__all__ if isinstance(getattr(tierroute, n), type)
              and issubclass(getattr(tierroute, n), Exception)]
    assert all(issubclass(e, tierroute.TierrouteError) for e in errors)
    assert tierroute.UpstreamRateLimited.retryable and not tierroute.UpstreamContextTooLong.retryable
