"""The server fixtures of these tests (``s3_server``, ``gcs_server``, ``remote_url``, ``shared_remote_url``,
``make_remote_url``) live in ``tests/remote_servers.py``, a plugin that tests/conftest.py loads, so that other
test folders (tests/readonly: ``dvx get``) share them."""
