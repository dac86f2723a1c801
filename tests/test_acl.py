"""ACL for the one user there is ('default'), driven by redis-py, replies checked against
redis-server (what redis-py's own suite found missing; docs/redis-py-suite.md)."""

import pytest
import redis


def test_acl_read_only_surface_as_redis(server, real_redis):
    ours, theirs = server.client(), redis.Redis(port=real_redis)
    for call in (lambda c: c.acl_whoami(), lambda c: c.acl_users(), lambda c: c.acl_list(),
                 lambda c: c.acl_deluser("nobody"), lambda c: c.acl_getuser("nobody"),
                 lambda c: c.acl_log(), lambda c: c.acl_log_reset(),
                 lambda c: len(c.acl_genpass()), lambda c: len(c.acl_genpass(555)),
                 lambda c: sorted(c.acl_cat("read")) == sorted(set(c.acl_cat("read")))):
        assert call(ours) == call(theirs)
    assert ours.acl_whoami() in ("default", b"default")
    assert {"get", "mget"} <= {x.decode() if isinstance(x, bytes) else x for x in ours.acl_cat("read")}
    assert ours.acl_cat() == theirs.acl_cat()
    assert ours.acl_getuser("default") == theirs.acl_getuser("default")
    for args in (("ACL", "CAT", "nope"), ("ACL", "DELUSER", "default"), ("ACL", "GENPASS", "0"),
                 ("ACL", "LOG", "x"), ("ACL", "NOPE")):
        errs = []
        for c in (ours, theirs):
            with pytest.raises(redis.ResponseError) as e:
                c.execute_command(*args)
            errs.append(str(e.value))
        assert errs[0] == errs[1]


def test_acl_users_cannot_be_created(make_server):
    r = make_server("--requirepass", "s3cret").client(password="s3cret")
    assert r.acl_list()[0].startswith("user default on #")
    with pytest.raises(redis.ResponseError, match="one user, 'default'"):
        r.acl_setuser("alice", enabled=True, nopass=True)
