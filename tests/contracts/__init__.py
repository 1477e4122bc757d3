"""Contract tests shared by the unit suite (the SQLite adapters) and the integration suite (the
Cassandra ones): each module's tests take the adapter as a fixture that the test module running
them provides."""
