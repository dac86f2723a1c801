"""CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO (Redis 7's replies and
error texts); the mechanism is repram_resp/tracking.py."""

from __future__ import annotations

from .. import errors
from ..protocol import OK, integer, parse_ll
from ..tracking import TrackState


def client_tracking(client, argv):
    redir = 0
    bcast = optin = optout = noloop = False
    prefixes = []
    n = len(argv)
    j = 3
    while j < n:
        opt = argv[j].upper()
        more = n - 1 - j
        if opt == b"REDIRECT" and more:
            j += 1
            if redir != 0:
                return client.error(errors.TRACKING_ONE_REDIRECT)
            v = parse_ll(argv[j])
            if v is None:
                return client.error(errors.NOT_INTEGER)
            redir = v
            if redir not in client.server.clients:
                return client.error(errors.TRACKING_NO_REDIRECT_CLIENT)
        elif opt == b"BCAST":
            bcast = True
        elif opt == b"OPTIN":
            optin = True
        elif opt == b"OPTOUT":
            optout = True
        elif opt == b"NOLOOP":
            noloop = True
        elif opt == b"PREFIX" and more:
            j += 1
            prefixes.append(argv[j])
        else:
            return client.error(errors.SYNTAX)
        j += 1
    mode = argv[2].upper()
    tracking = client.server.tracking
    if mode == b"ON":
        old = client.tracking
        if not bcast and prefixes:
            return client.error(errors.TRACKING_PREFIX_NEEDS_BCAST)
        if old is not None and old.bcast != bcast:
            return client.error(errors.TRACKING_BCAST_SWITCH)
        if bcast and (optin or optout):
            return client.error(errors.TRACKING_BCAST_OPTIN)
        if optin and optout:
            return client.error(errors.TRACKING_OPTIN_AND_OPTOUT)
        if old is not None and ((optin and old.optout) or (optout and old.optin)):
            return client.error(errors.TRACKING_OPT_SWITCH)
        if bcast:
            err = tracking.overlap(client, prefixes)
            if err is not None:
                return client.error(err)
        tracking.enable(client, TrackState(redir, bcast, optin, optout, noloop), prefixes)
    elif mode == b"OFF":
        tracking.disable(client)
    else:
        return client.error(errors.SYNTAX)
    return OK


def client_caching(client, argv):
    st = client.tracking
    if st is None:
        return client.error(errors.CACHING_NOT_TRACKING)
    opt = argv[2].upper()
    if opt == b"YES":
        if not st.optin:
            return client.error(errors.CACHING_YES_NEEDS_OPTIN)
    elif opt == b"NO":
        if not st.optout:
            return client.error(errors.CACHING_NO_NEEDS_OPTOUT)
    else:
        return client.error(errors.SYNTAX)
    st.caching = True
    return OK


def client_getredir(client, argv):
    st = client.tracking
    return integer(st.redirect if st is not None else -1)


def client_trackinginfo(client, argv):
    return client.server.tracking.info(client, client.enc)
