"""End-to-end tests of whole commands in the embedded mode: `alm run` (offline, to idle, with a
stop mid-refresh), `alm publishers import` of a whole catalogue, `alm audit`, `alm keys` against
a running API; each drives the real CLI entry point against the stub upstream on loopback."""
