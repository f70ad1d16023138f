pytest_plugins = [
    "tests.fixtures.mqtt",
    "tests.fixtures.postgres",
    "tests.fixtures.private_postgres",
    "tests.fixtures.data",
    "tests.fixtures.browser",
]
