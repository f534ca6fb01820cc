"""The stack's wiring is a default: an inventory override of a wired variable takes effect."""


def test_inventory_override_of_a_wired_variable_takes_effect(host):
    # molecule/resources/tier_small/group_vars/postgres_primary.yml sets postgresql_listen_addresses.
    listening = host.check_output("ss -ltnH 'sport = :5432'")
    assert "127.0.0.2:5432" in listening, listening
    assert "127.0.0.1:5432" in listening, listening
