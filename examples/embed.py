"""Run a three-node pykka_raft cluster inside one process and write one key."""

from pykka_raft import (
    ClientPayload,
    Config,
    InitWithConfig,
    MemStore,
    MetricsHub,
    Put,
    Raft,
    RaftRouter,
    Register,
    ResponseMode,
    State,
)

config = Config()  # defaults: 200-300 ms election timeout, 50 ms heartbeat
router = RaftRouter.start()  # the in-process network shared by all nodes
hub = MetricsHub()  # receives every node's RaftMetrics
nodes, storages = {}, []
for node_id in (1, 2, 3):
    storages.append(MemStore.start())
    nodes[node_id] = Raft.start(node_id, config, router, storages[-1], hub)
    router.ask(Register(node_id, nodes[node_id]))

hub.wait_for(lambda m: len(m) == 3, timeout=5, what="every node to start")
for ref in nodes.values():
    ref.ask(InitWithConfig([1, 2, 3]))
leader = hub.wait_for(
    lambda m: next((n for n, x in m.items() if x.state is State.LEADER), None),
    timeout=10,
    what="a leader",
)
reply = nodes[leader].ask(ClientPayload.new(Put("greeting", "hello"), ResponseMode.APPLIED))
print(f"node {leader} leads; the Put was applied at log index {reply.index}")

for ref in [*nodes.values(), *storages, router]:
    ref.stop()
