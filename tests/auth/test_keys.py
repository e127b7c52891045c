from flowdesk.auth import keys
from flowdesk.auth.permissions import effective_permissions, user_permissions


def test_generated_keys_are_well_formed_and_distinct() -> None:
    generated = {keys.generate_key() for _ in range(200)}
    assert len(generated) == 200
    for key in generated:
        assert key.startswith("fdk_")
        assert len(key) == keys.KEY_LENGTH
        assert keys.is_well_formed(key)


def test_checksum_rejects_a_single_changed_character() -> None:
    key = keys.generate_key()
    position = 10
    replacement = "A" if key[position] != "A" else "B"
    tampered = key[:position] + replacement + key[position + 1 :]
    assert not keys.is_well_formed(tampered)


def test_malformed_keys_are_rejected() -> None:
    key = keys.generate_key()
    assert not keys.is_well_formed(key[:-1])
    assert not keys.is_well_formed("xyz_" + key[4:])
    assert not keys.is_well_formed(key[:-1] + "!")
    assert not keys.is_well_formed("")


def test_hash_is_sha256_and_display_prefix_is_short() -> None:
    key = keys.generate_key()
    assert len(keys.hash_key(key)) == 32
    assert keys.hash_key(key) != keys.hash_key(keys.generate_key())
    assert keys.display_prefix(key) == key[:12]


def test_admin_implies_every_permission() -> None:
    assert user_permissions(["admin"]) == {
        "admin",
        "tickets:create",
        "tickets:manage",
        "tickets:close",
    }
    # Anything else a group holds is a workflow right (checked against the catalog when the
    # group is written): kept, and carried only by a key that may write tickets.
    assert user_permissions(["tickets:create", "ApproveOrder"]) == {
        "tickets:create",
        "ApproveOrder",
    }
    assert effective_permissions(["ApproveOrder@orders"], ["tickets:write"]) == {
        "ApproveOrder@orders"
    }
    assert effective_permissions(["ApproveOrder"], ["tickets:read", "admin"]) == set()


def test_effective_permissions_are_user_permissions_intersected_with_scopes() -> None:
    everything = ["admin"]
    assert effective_permissions(everything, ["tickets:read"]) == set()
    assert effective_permissions(everything, ["tickets:write"]) == {
        "tickets:create",
        "tickets:manage",
        "tickets:close",
    }
    assert effective_permissions(everything, ["admin"]) == {"admin"}
    # A key never grants what its user does not hold.
    assert effective_permissions(["tickets:create"], ["tickets:write", "admin"]) == {
        "tickets:create"
    }
