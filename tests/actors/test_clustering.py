"""Elections and failover (actix-raft's clustering suite, and election safety)."""

from __future__ import annotations

from pykka_raft import Put, State


def test_isolated_leader_is_replaced_and_rejoins_as_follower(formed):
    old = formed.leader()
    old_term = formed.hub.get(old).current_term
    formed.isolate(old)
    new = formed.leader(timeout=15)
    assert new != old
    new_term = formed.hub.get(new).current_term
    assert new_term > old_term
    # Check quorum: the isolated leader notices it lost the majority and steps down.
    formed.hub.wait_for(lambda m: m[old].state is not State.LEADER, 10, "old leader to step down")
    formed.restore(old)
    formed.hub.wait_for(
        lambda m: m[old].state is State.FOLLOWER and m[old].current_leader == new,
        15,
        "old leader to follow the new one",
    )
    response = formed.write(Put("k", "v"))
    formed.wait_applied(response.index)


def test_stopped_leader_is_replaced_and_catches_up_after_restart(formed):
    old = formed.leader()
    formed.stop_node(old)
    new = formed.leader(timeout=15)
    assert new != old
    writes = [formed.write(Put("k", i)) for i in range(20)]
    formed.start_node(old)
    formed.wait_applied(writes[-1].index)
    formed.hub.wait_for(lambda m: m[old].current_leader == new, 15, "restarted node to follow")
    assert formed.dump(old).state_machine == formed.dump(new).state_machine == {"k": 19}


def test_never_two_leaders_in_one_term_over_many_forced_elections(formed):
    for round_ in range(8):
        leader = formed.leader(timeout=20)
        formed.isolate(leader)
        new = formed.leader(timeout=20)
        assert new != leader
        formed.write(Put("round", round_))
        formed.restore(leader)
    formed.leader(timeout=20)
    by_term = formed.hub.leaders_by_term()
    assert len(by_term) >= 9
    for term, leaders in by_term.items():
        assert len(leaders) == 1, f"term {term} had leaders {leaders}"
    terms = [m.current_term for m in formed.hub.history]
    per_node: dict[int, int] = {}
    for m in formed.hub.history:  # terms never decrease on a node
        assert m.current_term >= per_node.get(m.id, 0)
        per_node[m.id] = m.current_term
    assert max(terms) >= 9
