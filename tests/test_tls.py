"""TLS on the local cluster: HTTPS with a self-signed certificate made for the cluster (or one
given), verified by the client against that certificate, never with verification off."""

from __future__ import annotations

import ssl

import httpx
import pytest
import userfns

import rh_core as rh


@pytest.fixture
def tls_cluster(rh_home, request):
    cluster = rh.cluster(name=f"tls-{request.node.name[:20]}", provider="local",
                         server_connection_type="tls", den_auth=True)
    yield cluster
    cluster.down()


def test_calls_over_https_with_the_clusters_own_certificate(tls_cluster, rh_home):
    f = rh.function(userfns.concat).to(tls_cluster)
    assert f("run", "house") == "runhouse"
    info = tls_cluster.client().info
    assert info.base_url.startswith("https://")
    cert = rh_home / "clusters" / tls_cluster.name / "tls" / "cert.pem"
    assert info.verify == str(cert)
    key = rh_home / "clusters" / tls_cluster.name / "tls" / "key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    token = tls_cluster.grant("alice", "read")
    ctx = ssl.create_default_context(cafile=str(cert))
    r = httpx.get(f"{info.base_url}/concat/call?a=run&b=house", verify=ctx,
                  headers={"Authorization": f"Bearer {token}"})
    assert r.json() == "runhouse"
    r = httpx.get(f"https://localhost:{httpx.URL(info.base_url).port}/health", verify=ctx)
    assert r.status_code == 200  # the certificate names localhost too


def test_plain_http_and_unverified_peers_get_nothing(tls_cluster):
    rh.function(userfns.add).to(tls_cluster)
    port = httpx.URL(tls_cluster.client().info.base_url).port
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{port}/health", timeout=5)  # system CAs do not know it


def test_given_certificate_is_used(rh_home, tmp_path):
    from rh_core.transport import tls

    cert, key = tls.self_signed(tmp_path / "mine", ["rh-test.internal"])
    cluster = rh.cluster(name="tls-given", provider="local", server_connection_type="tls",
                         ssl_certfile=str(cert), ssl_keyfile=str(key))
    try:
        assert rh.function(userfns.add).to(cluster)(1, 2) == 3
        assert cluster.client().info.verify == str(cert)
        assert not (rh_home / "clusters" / "tls-given" / "tls").exists()
    finally:
        cluster.down()


def test_half_a_certificate_is_refused(rh_home):
    cluster = rh.cluster(name="tls-half", provider="local", server_connection_type="tls",
                         ssl_certfile="/nonexistent/cert.pem")
    with pytest.raises(rh.ConfigError, match="give both ssl_certfile and ssl_keyfile"):
        cluster.up_if_not()


def test_shared_workstation_form(rh_home):
    """The form a shared workstation uses: tokens, TLS, and every interface."""
    cluster = rh.cluster("local", den_auth=True, server_connection_type="tls", host="0.0.0.0")
    assert cluster.server_host == "0.0.0.0" and cluster.den_auth
    cluster = rh.cluster(name="tls-shared", provider="local", den_auth=True,
                         server_connection_type="tls", host="0.0.0.0")
    try:
        assert rh.function(userfns.add).to(cluster)(2, 3) == 5
        port = httpx.URL(cluster.client().info.base_url).port
        ctx = ssl.create_default_context(cafile=cluster.client().info.verify)
        assert httpx.get(f"https://127.0.0.1:{port}/keys", verify=ctx).status_code == 401
    finally:
        cluster.down()


def test_exposed_server_without_tokens_is_refused(rh_home):
    cluster = rh.cluster(name="exposed", provider="local", host="0.0.0.0")
    with pytest.raises(rh.ConfigError, match="without tokens: set den_auth=True"):
        cluster.up_if_not()
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "rh_server", "--host", "0.0.0.0", "--port", "0"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "without --den-auth" in out.stderr


def test_certificate_is_remade_when_the_names_change(tmp_path):
    from cryptography import x509

    from rh_core.transport import tls

    cert, _ = tls.self_signed(tmp_path, ["a.internal"])
    first = cert.read_bytes()
    assert tls.self_signed(tmp_path, ["a.internal"])[0].read_bytes() == first  # kept
    cert, _ = tls.self_signed(tmp_path, ["b.internal"])
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "b.internal" in names and cert.read_bytes() != first


def _private_ca(folder):
    """A CA of our own and a server certificate it issued for localhost and 127.0.0.1."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test private CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rh server")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = {n: folder / f"{n}.pem" for n in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(pem))
    paths["cert"].write_bytes(leaf.public_bytes(pem))
    paths["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths


def test_a_private_ca_is_trusted_through_ssl_ca_bundle(rh_home, tmp_path):
    files = _private_ca(tmp_path)
    fields = dict(provider="local", server_connection_type="tls", den_auth=True,
                  ssl_certfile=str(files["cert"]), ssl_keyfile=str(files["key"]))
    cluster = rh.cluster(name="tls-private-ca", ssl_ca_bundle=str(files["ca"]), **fields)
    try:
        assert rh.function(userfns.add).to(cluster)(2, 3) == 5
        assert cluster.client().info.verify == str(files["ca"])
        without = rh.cluster(name="tls-private-ca", **fields)  # the same server, no bundle
        with pytest.raises(rh.ConnectionFailedError, match="does not trust.*ssl_ca_bundle"):
            without.status()
    finally:
        cluster.down()
