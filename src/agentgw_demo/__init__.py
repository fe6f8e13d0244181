"""Demo upstreams for trying agentgw: ``python -m agentgw_demo.<name>``.

echo, mcp_server, mcp_client, a2a_agent, openai_server and agentcore_standin. Installed by
the same distribution as agentgw but outside its import graph: nothing under ``agentgw``
imports this package (tests/test_import_graph.py).
"""
