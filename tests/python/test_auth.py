"""The Python client against a server with authentication on: tokens, tenancy and read-only
sharing (Client(token=...), share_zoo), each failure with its own exception class."""

import os
import tempfile
import unittest

import gradzoo
from server_process import ServerProcess

TOKENS = {"alice": "7d3f1a9c2b8e4f60a5d7c9e1b3f5a7c9", "bob": "c4e6a8f0b2d4f6a8c0e2a4b6d8f0a2c4",
          "root": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}
SERVER = None


def setUpModule():
    global SERVER
    fd, path = tempfile.mkstemp(prefix="gradzoo-tokens-")
    with os.fdopen(fd, "w") as f:
        for user, token in TOKENS.items():
            f.write(f"{user} {token} {'admin' if user == 'root' else 'user'}\n")
    try:
        SERVER = ServerProcess(["--tokens-file", path], name="gradzoo-auth")
    finally:
        os.unlink(path)  # read once at start-up


def tearDownModule():
    if SERVER is not None:
        assert SERVER.stop() == 0


def client(user=None, token=None):
    return gradzoo.Client(SERVER.address, token=token or (TOKENS[user] if user else None))


class AuthTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.alice, cls.bob, cls.root = client("alice"), client("bob"), client("root")
        cls.alice.train("alices", seeds=[0], hidden=[8], steps=50).wait(progress=False,
                                                                        timeout=300)

    def test_tokens(self):
        with client() as anonymous:
            self.assertTrue(anonymous.health())  # health needs no token
            with self.assertRaises(gradzoo.UnauthenticatedError):
                anonymous.zoos()
        with client(token="x" * 40) as wrong:
            with self.assertRaises(gradzoo.UnauthenticatedError):
                wrong.server_info()

    def test_tenancy_and_sharing(self):
        self.assertEqual(self.alice.zoo("alices").owner, "alice")
        self.assertNotIn("zoos/alices", [z.name for z in self.bob.zoos()])
        self.assertIn("zoos/alices", [z.name for z in self.root.zoos()])
        with self.assertRaises(gradzoo.NotFoundError):
            self.bob.models("alices")
        z = self.alice.share_zoo("alices", ["bob"])
        self.assertEqual((z.owner, z.readers), ("alice", ["bob"]))
        self.assertEqual(len(self.bob.models("alices", weights=True)), 1)
        (f,) = self.bob.gradient_field("alices/m0000", points=[[0.5] * 4])
        self.assertEqual(f.gradients.shape, (1, 2, 4))
        with self.assertRaises(gradzoo.PermissionDeniedError):
            self.bob.share_zoo("alices", ["bob"])
        with self.assertRaises(gradzoo.PermissionDeniedError):
            self.bob.delete_zoo("alices")
        self.assertEqual(self.alice.share_zoo("alices", []).readers, [])
        with self.assertRaises(gradzoo.NotFoundError):
            self.bob.zoo("alices")


if __name__ == "__main__":
    unittest.main()
