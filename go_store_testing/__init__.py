"""Test and benchmark harnesses of go_store: never installed on store machines.

``truth_feed`` turns a simulated run's ground truth into gate / cart_ledger input,
``ledger_node_bench`` runs the ledger nodes in their own processes and plays such a feed
to them, ``ledger_bench`` measures the ledger core. setup.py installs this package with
the editable checkout (tests and benchmarks import it); CMakeLists.txt does not.
"""
