"""The deployment files in deploy/, checked offline: the Kubernetes manifests parse, keep PostgreSQL's
data on a claim and every password in a Secret, the command of each Job and of the Slurm script is one
the real CLI parser accepts and names the study the run Job creates, and the image runs
`python -m search`. Nothing here builds the image, talks to a cluster or submits to Slurm."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from search.cli import build_parser
from search.space import load_space
from search.study.studies import study_name

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SLURM_SCRIPT = DEPLOY / "slurm" / "worker.sbatch"
# What a Secret's key stands for when a command is expanded: its value is never in a file here.
SECRET_VALUES = {"url": "postgresql://search:from-the-secret@search-postgres/search", "password": "from-the-secret"}
ENTRYPOINT = ["python", "-m", "search"]


def manifests() -> list[dict[str, Any]]:
    paths = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
    assert paths, "no manifests in deploy/kubernetes"
    return [doc for path in paths for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def of_kind(kind: str, docs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [doc for doc in (manifests() if docs is None else docs) if doc["kind"] == kind]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def job_container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container


def job_args(job: dict[str, Any]) -> list[str]:
    """The Job's command line after `python -m search`, with $(VAR) expanded as the kubelet does, each
    variable from the container's env (a secretKeyRef by the value its key stands for)."""
    container = job_container(job)
    assert container.get("command", ENTRYPOINT) == ENTRYPOINT, "a Job must run the image's entrypoint"
    env = {}
    for var in container.get("env", []):
        source = var.get("valueFrom", {}).get("secretKeyRef")
        env[var["name"]] = SECRET_VALUES[source["key"]] if source else var["value"]

    def expand(match: re.Match[str]) -> str:
        assert match[1] in env, f"{job['metadata']['name']}: $({match[1]}) is not in the container's env"
        return env[match[1]]

    return [re.sub(r"\$\((\w+)\)", expand, str(arg)) for arg in container["args"]]


def jobs_running(command: str) -> list[dict[str, Any]]:
    return [job for job in of_kind("Job") if job_container(job)["args"][0] == command]


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif value is not None:
        yield str(value)


def created_study() -> str:
    """The name of the study the run Job creates, as `run` names it."""
    (job,) = jobs_running("run")
    args = build_parser().parse_args(job_args(job))
    return study_name(load_space(ROOT / args.space), args.study)


def run_slurm_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the sbatch script as a Slurm array task would, in a submit folder whose .venv/bin/python
    only prints the arguments it was given."""
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    environment = {"PATH": os.environ["PATH"], "SLURM_ARRAY_TASK_ID": "3", **env}
    return subprocess.run(["bash", str(SLURM_SCRIPT)], cwd=tmp_path, env=environment, capture_output=True,
                          text=True, timeout=30)


@pytest.mark.fast
def test_every_manifest_is_a_kubernetes_object():
    docs = manifests()
    for doc in docs:
        assert isinstance(doc, dict) and {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        assert doc["metadata"]["name"], doc
    assert {"PersistentVolumeClaim", "Deployment", "Service", "Job"} <= {doc["kind"] for doc in docs}


@pytest.mark.fast
def test_postgres_keeps_its_data_on_a_claim_and_its_password_in_the_secret():
    docs = manifests()
    claims = {doc["metadata"]["name"] for doc in of_kind("PersistentVolumeClaim", docs)}
    (server,) = [doc for doc in of_kind("Deployment", docs) if "postgres" in containers(doc)[0]["image"]]
    pod = server["spec"]["template"]["spec"]
    mounted = {volume["name"] for container in pod["containers"] for volume in container.get("volumeMounts", [])}
    assert any(volume["name"] in mounted and volume.get("persistentVolumeClaim", {}).get("claimName") in claims
               for volume in pod["volumes"])
    (password,) = [var for var in containers(server)[0]["env"] if var["name"] == "POSTGRES_PASSWORD"]
    assert password["valueFrom"]["secretKeyRef"]["key"] == "password"
    services = [doc for doc in of_kind("Service", docs) if doc["spec"]["selector"].items()
                <= server["spec"]["template"]["metadata"]["labels"].items()]
    assert [port["port"] for service in services for port in service["spec"]["ports"]] == [5432]


@pytest.mark.fast
def test_the_worker_job_runs_workers_in_parallel_with_resource_requests():
    (job,) = jobs_running("worker")
    assert job["spec"]["parallelism"] >= 2
    assert "completions" not in job["spec"], "workers stop when the budget is met: a work queue, no completions"
    requests = job_container(job)["resources"]["requests"]
    assert requests.get("cpu") and requests.get("memory")


@pytest.mark.fast
def test_every_storage_url_comes_from_the_secret():
    secret_refs = set()
    for job in of_kind("Job"):
        args = job_container(job)["args"]
        assert "--storage" in args, job["metadata"]["name"]
        reference = re.fullmatch(r"\$\((\w+)\)", args[args.index("--storage") + 1])
        assert reference, f"{job['metadata']['name']}: --storage must be a $(VAR) from the container's env"
        (var,) = [var for var in job_container(job)["env"] if var["name"] == reference[1]]
        ref = var["valueFrom"]["secretKeyRef"]
        secret_refs.add((ref["name"], ref["key"]))
    (server,) = [doc for doc in of_kind("Deployment") if "postgres" in containers(doc)[0]["image"]]
    secret_refs |= {(var["valueFrom"]["secretKeyRef"]["name"], var["valueFrom"]["secretKeyRef"]["key"])
                    for var in containers(server)[0]["env"] if "valueFrom" in var}
    assert {name for name, _ in secret_refs} == {"search-storage"}
    assert {key for _, key in secret_refs} == {"url", "password"}
    # The README's command creates that Secret, with a URL to the PostgreSQL Service.
    readme = (ROOT / "README.md").read_text().replace("\\\n", " ")  # continued lines joined
    (line,) = [line for line in readme.splitlines() if "kubectl create secret generic" in line]
    words = shlex.split(line[line.index("kubectl"):], comments=True)
    literals = dict(word.removeprefix("--from-literal=").split("=", 1) for word in words
                    if word.startswith("--from-literal="))
    assert words[words.index("generic") + 1] == "search-storage" and literals.keys() == {"url", "password"}
    services = {doc["metadata"]["name"] for doc in of_kind("Service")}
    assert re.match(r"postgresql://search:\$PASSWORD@([\w-]+)/search$", literals["url"])[1] in services


@pytest.mark.fast
def test_no_deployment_file_holds_a_password():
    """A property over every document and the Slurm script: no Secret with values, no credential-like
    variable set to a literal, no URL with a password that is not a variable."""
    password_in_url = re.compile(r"\w+://[^/\s:@]+:(?!\$\(|\$\{|\$[A-Z])[^@\s]+@")
    texts = [path.read_text() for path in [SLURM_SCRIPT, DEPLOY / "Containerfile", *(DEPLOY / "kubernetes").glob("*")]]
    for doc in manifests():
        if doc["kind"] == "Secret":
            assert not doc.get("data") and not doc.get("stringData"), f"secret {doc['metadata']['name']} has values"
        for text in strings(doc):
            assert not password_in_url.search(text), text
        if "template" in doc.get("spec", {}):
            for container in containers(doc):
                for var in container.get("env", []):
                    if re.search(r"PASSWORD|URL|SECRET|TOKEN", var["name"]):
                        assert "value" not in var, f"{doc['metadata']['name']}: {var['name']} is a literal"
    for text in texts:
        assert not password_in_url.search(text), password_in_url.search(text)


@pytest.mark.fast
def test_job_commands_are_accepted_by_the_cli_and_name_the_created_study():
    parser = build_parser()
    name = created_study()
    assert name == "mlp"
    (run,) = jobs_running("run")
    assert parser.parse_args(job_args(run)).storage == SECRET_VALUES["url"]
    workers = jobs_running("worker")
    assert workers
    for job in workers:
        args = parser.parse_args(job_args(job))
        assert (args.command, args.study, args.storage) == ("worker", name, SECRET_VALUES["url"])
    assert {job_container(job)["image"] for job in of_kind("Job")} == {job_container(run)["image"]}


@pytest.mark.fast
def test_the_slurm_script_runs_a_worker_of_the_created_study(tmp_path):
    assert subprocess.run(["bash", "-n", str(SLURM_SCRIPT)]).returncode == 0
    text = SLURM_SCRIPT.read_text()
    options = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", text, re.MULTILINE))
    assert re.fullmatch(r"\d+-\d+(%\d+)?", options["array"]) and int(options["cpus-per-task"]) >= 1
    assert re.fullmatch(r"\d+[KMGT]?", options["mem"])

    ran = run_slurm_script(tmp_path, STORAGE_URL=SECRET_VALUES["url"])
    assert ran.returncode == 0, ran.stderr
    argv = json.loads(ran.stdout)
    assert argv[:2] == ["-m", "search"]
    args = build_parser().parse_args(argv[2:])
    assert (args.command, args.study, args.storage) == ("worker", created_study(), SECRET_VALUES["url"])
    assert args.results == "results/worker-3"  # each array task its own folder

    unset = run_slurm_script(tmp_path / "again")
    assert unset.returncode != 0 and "STORAGE_URL" in unset.stderr and not unset.stdout


@pytest.mark.fast
def test_the_image_installs_the_postgres_extra_and_runs_python_m_search():
    lines = [line for line in (DEPLOY / "Containerfile").read_text().splitlines() if not line.startswith("#")]
    instructions = " ".join(lines).replace("\\ ", " ")
    assert re.search(r"^FROM python:3\.11-slim\b", "\n".join(lines), re.MULTILINE)
    assert re.search(r"pip install [^&]*'\.\[postgres\]'", instructions)
    (entrypoint,) = [line for line in lines if line.startswith("ENTRYPOINT ")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT ")) == ENTRYPOINT
    # The run Job's space file is in the image, where it is looked for (relative to WORKDIR).
    (run,) = jobs_running("run")
    space = Path(build_parser().parse_args(job_args(run)).space)
    assert (ROOT / space).is_file()
    assert re.search(rf"^COPY {space.parts[0]}/ {space.parts[0]}/$", "\n".join(lines), re.MULTILINE)
