"""Keys and credentials of the payment emulators.

NOT SECRETS, and worth nothing outside this process: the RSA keys are
generated when the process first needs them and never written anywhere;
the ids below are fixed placeholders. They authenticate emulated payments
only, which move no money. Real gateways are configured through the
environment (docs/payments.md).
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ALIPAY_APP_ID = "9021000000000000"  # Alipay's sandbox apps start with 9021
ALIPAY_SELLER_ID = "2088000000000000"
PAYPAL_CLIENT_ID = "emulator-client-id"
PAYPAL_CLIENT_SECRET = "emulator-client-secret"  # noqa: S105 - a placeholder of the emulator, not a secret
PAYPAL_WEBHOOK_ID = "EMULATOR0WEBHOOK0000000A"


@functools.cache
def _key(role: str) -> rsa.RSAPrivateKey:
    """One 2048-bit key per role, for the life of the process."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_pem(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def merchant_private_pem() -> str:
    """The console's Alipay application key under emulation (ALIPAY_PRIVATE_KEY)."""
    return _private_pem(_key("alipay-merchant"))


def alipay_private_key() -> rsa.RSAPrivateKey:
    """The emulated Alipay's own key: signs notifications and returns."""
    return _key("alipay-platform")


def alipay_public_pem() -> str:
    """What the console verifies Alipay with (ALIPAY_PUBLIC_KEY)."""
    return _public_pem(alipay_private_key())


def paypal_private_key() -> rsa.RSAPrivateKey:
    """Signs the emulated PayPal's webhooks."""
    return _key("paypal-webhook")


@functools.cache
def paypal_certificate_pem() -> bytes:
    """A self-signed certificate of ``paypal_private_key``, valid 2000–2100
    (tests may travel in time)."""
    key = paypal_private_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.emulator.invalid")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
            .not_valid_after(dt.datetime(2100, 1, 1, tzinfo=dt.UTC))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def paypal_certificate_id() -> str:
    """Names the certificate in its URL (a new key, a new URL: the adapter caches by URL)."""
    return "CERT-" + hashlib.sha256(paypal_certificate_pem()).hexdigest()[:24]
