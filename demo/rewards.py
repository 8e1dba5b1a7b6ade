"""Demo rewards: wallets linked by signing real challenges with the public dev keys, reward policies, epoch 1.

Call ``load_settlement_demo(users)`` from the demo loader after the demo Datanets exist. Safe to call again.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.messages import encode_defunct

from accounts import services as account_services
from accounts.models import User
from datanets.models import Datanet
from settlement import rewards
from settlement.chain.embedded import DEV_KEYS
from settlement.models import Epoch, RewardPolicy

# DEV_KEYS[0:3] deploy, anchor and relay; the rest belong to demo users (public keys: dev chains only).
DEMO_WALLETS = {
    "alice": DEV_KEYS[3],
    "bob": DEV_KEYS[4],
    "curator1": DEV_KEYS[5],
    "curator2": DEV_KEYS[6],
    "owner": DEV_KEYS[7],
}


def _link(user: User, key: str) -> None:
    address = Account.from_key(key).address
    if user.wallet_address == address:
        return
    challenge = account_services.wallet_challenge_create(user=user, address=address)
    signature = Account.sign_message(encode_defunct(text=challenge.message), private_key=key).signature.to_0x_hex()
    account_services.wallet_link(user=user, nonce=challenge.nonce, signature=signature)


def load_settlement_demo(users: dict[str, User]) -> Epoch:
    for name, key in DEMO_WALLETS.items():
        if name in users:
            _link(users[name], key)
    for datanet in Datanet.objects.filter(owner__in=[u for u in users.values()]):
        RewardPolicy.objects.get_or_create(datanet=datanet)
    return rewards.epoch_open_get()
