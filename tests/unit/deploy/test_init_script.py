"""deploy/init.sh (the one-shot init service) only runs hcx commands that exist."""

from __future__ import annotations

from collections import Counter

from tests.unit.deploy import deployment as d

INIT_SCRIPT = d.ROOT / "deploy" / "init.sh"


def test_every_hcx_command_of_the_init_script_parses() -> None:
    commands = d.shell_commands(INIT_SCRIPT.read_text(encoding="utf-8"))
    assert commands, "no hcx command found in deploy/init.sh"
    for argv in commands:
        d.parse(argv)  # raises ParseError naming the command


def test_init_makes_every_identity_the_compose_services_use() -> None:
    """Each --tls-dir of a compose service is an --out of an issue-cert in the script."""
    issued = set()
    commands = d.shell_commands(INIT_SCRIPT.read_text(encoding="utf-8"))
    for argv in commands:
        if "issue-cert" in argv:
            issued.add(d.parse(argv).kind)
    assert issued == {"gateway", "operator", "node", "checkpoint"}
    # the coordinators (and the root, log and trust-list signers) come from `registry init`
    inits = [d.parse(argv) for argv in commands if argv[:2] == ["registry", "init"]]
    assert [a.coordinators for a in inits] == ["alice,bob,carol"]
    text = INIT_SCRIPT.read_text(encoding="utf-8")
    for name, service in d.hcx_services().items():
        args = d.parse(d.command(service), d.environment(service))
        relative = str(args.tls_dir).removeprefix("/var/lib/hcx/pki/")
        pattern = relative.replace(args.province, "$1") if name.startswith("node-") else relative
        # gateway-N directories come from the loop over $GATEWAYS, replicas from $REPLICAS
        assert pattern.split("/")[-1] in text, f"{name}: {args.tls_dir} is never issued"


def test_init_onboards_the_three_provinces_of_the_compose_file() -> None:
    text = INIT_SCRIPT.read_text(encoding="utf-8")
    onboarded = Counter(
        line.split()[1] for line in text.splitlines() if line.startswith("province ")
    )
    nodes = {s.split("-")[1] for s in d.hcx_services() if s.startswith("node-")}
    assert set(onboarded) == nodes and all(n == 1 for n in onboarded.values())


def test_init_script_is_executable_and_installed_where_compose_runs_it() -> None:
    assert INIT_SCRIPT.stat().st_mode & 0o111
    dockerfile = (d.ROOT / "Dockerfile").read_text(encoding="utf-8")
    entrypoint = d.services()["init"]["entrypoint"][0]
    assert f"COPY --chmod=0755 deploy/init.sh {entrypoint}" in dockerfile
