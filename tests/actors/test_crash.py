"""Crash and restart of nodes from what their storage acknowledged."""

from __future__ import annotations

from pykka_raft import Put, State


def test_crashed_leader_restarts_from_durable_state_and_rejoins(formed):
    writes = [formed.write(Put("k", i)) for i in range(20)]
    old = formed.leader()
    formed.crash(old)
    # The dead node published nothing; the cluster marks the end of its run for the
    # monitors (indexes_never_decrease), after the node's own last push.
    assert formed.hub.latest[old].state is State.SHUTDOWN
    new = formed.leader(timeout=20)
    assert new != old
    after = formed.write(Put("k", "after crash"))
    formed.start_node(old)
    formed.wait_applied(after.index, timeout=20)
    formed.hub.wait_for(lambda m: m[old].current_leader == new, 20, "restarted node to follow")
    for node_id in formed.nodes:
        assert formed.dump(node_id).state_machine == {"k": "after crash"}
    assert writes[-1].index < after.index


def test_crash_keeps_term_and_vote_and_never_changes_a_vote_within_a_term(formed):
    for _ in range(3):
        leader = formed.leader(timeout=20)
        formed.crash(leader)
        formed.leader(timeout=20)
        formed.start_node(leader)
    formed.leader(timeout=20)
    for node_id, states in formed.hard_states.items():
        votes: dict[int, int] = {}
        terms = [hs.current_term for hs in states]
        assert terms == sorted(terms), f"node {node_id} term went back: {terms}"
        for hs in states:
            if hs.voted_for is not None:
                assert votes.setdefault(hs.current_term, hs.voted_for) == hs.voted_for
    restarted = [m for m in formed.hub.history if m.state is State.LEADER]
    assert len({m.current_term for m in restarted}) >= 4
