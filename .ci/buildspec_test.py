#!/usr/bin/env python3
"""Run buildspec.yml's phase commands offline, with stub aws/docker/cargo, and check them.

Each scenario copies the repository to a temporary directory, puts stub
`aws`, `docker`, `cargo` and `curl` executables first on PATH (each appends its
argv, and for `docker login` its stdin, as one JSON line to a log), and runs
the phases in CodeBuild's order the way CodeBuild 0.2 does:

- a phase's commands run one after another in one bash process; the phase
  stops at the first command that exits non-zero (CodeBuild checks each
  listed command's exit status, like `set -e` at command granularity);
- shell variables (exported or not) carry over from one phase to the next,
  since CodeBuild 0.2 runs every phase in the same shell instance;
- environment precedence: project variables over buildspec `env.variables`;
- after a failure, `on-failure: ABORT` ends the build; otherwise a failed
  install/pre_build ends it, and a failed build still runs post_build with
  CODEBUILD_BUILD_SUCCEEDING=0.

Then it asserts the ECR login, both tags, both pushes and the artifact in the
good case, and that a failing test, image build or missing variable stops
the build before any push. Needs python3 and PyYAML; no network, no Docker.
Exit status is non-zero when any scenario fails.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("buildspec_test: PyYAML is missing (pip install pyyaml)")

REPO = Path(__file__).resolve().parents[1]
PHASES = ("install", "pre_build", "build", "post_build")
ACCOUNT = "123456789012"
REGION = "eu-west-1"
REPO_NAME = "coworking-gateway"
COMMIT = "0123abcd4567ef890123abcd4567ef8901234567"
STUB_PASSWORD = "stub-ecr-password"

# Bash's own variables: never carried from one phase's shell to the next.
BASH_INTERNALS = {
    "BASH", "BASHOPTS", "BASHPID", "BASH_ALIASES", "BASH_ARGC", "BASH_ARGV",
    "BASH_ARGV0", "BASH_CMDS", "BASH_COMMAND", "BASH_EXECUTION_STRING",
    "BASH_LINENO", "BASH_LOADABLES_PATH", "BASH_REMATCH", "BASH_SOURCE",
    "BASH_SUBSHELL", "BASH_VERSINFO", "BASH_VERSION", "COLUMNS", "COMP_WORDBREAKS",
    "DIRSTACK", "EPOCHREALTIME", "EPOCHSECONDS", "EUID", "FUNCNAME", "GROUPS",
    "HISTCMD", "HISTFILE", "HISTFILESIZE", "HISTSIZE", "HOSTNAME", "HOSTTYPE",
    "IFS", "LINENO", "LINES", "MACHTYPE", "MAILCHECK", "OLDPWD", "OPTARG",
    "OPTERR", "OPTIND", "OSTYPE", "PIPESTATUS", "PPID", "PS1", "PS2", "PS4",
    "PWD", "RANDOM", "SECONDS", "SHELL", "SHELLOPTS", "SHLVL", "SRANDOM", "UID", "_",
}

STUB = textwrap.dedent(
    """\
    #!{python}
    # Stub {tool}: record the call, then act like the real tool just enough.
    import json, os, sys
    tool = {tool!r}
    argv = sys.argv[1:]
    entry = {{"tool": tool, "argv": argv}}
    if tool == "docker" and argv[:1] == ["login"] and "--password-stdin" in argv:
        entry["stdin"] = sys.stdin.read()
    with open(os.environ["STUB_LOG"], "a") as log:
        log.write(json.dumps(entry) + "\\n")
    # STUB_FAIL="docker build" makes `docker build ...` fail, and so on.
    fail = os.environ.get("STUB_FAIL", "").split()
    if fail and fail[0] == tool and argv[: len(fail) - 1] == fail[1:]:
        print(f"stub {{tool}}: failing {{' '.join(argv)}} as asked", file=sys.stderr)
        sys.exit(101)
    if tool == "curl":
        print("stub curl: no network in this test", file=sys.stderr)
        sys.exit(7)
    if tool == "aws" and argv[:2] == ["ecr", "get-login-password"]:
        print({password!r})
    if tool == "docker" and argv[:1] == ["login"]:
        print("Login Succeeded")
    if tool == "cargo" and argv[:1] == ["--version"]:
        print("cargo 1.95.0 (stub)")
    """
)


def expected_version(cargo_toml: Path) -> str:
    """The package version, read with a TOML parser (independent of the buildspec's sed)."""
    data = tomllib.loads(cargo_toml.read_text())
    version = data.get("package", {}).get("version")
    if version is None or isinstance(version, dict):  # `version.workspace = true`
        version = data["workspace"]["package"]["version"]
    return version


@dataclass
class Run:
    ok: bool
    phases_run: list[str]
    calls: list[dict]
    workdir: Path
    output: str


@dataclass
class Scenario:
    name: str
    project_env: dict[str, str]
    stub_fail: str = ""
    mutate: object = None  # callable(buildspec dict) -> None
    cargo_toml: str | None = None  # replaces the copied Cargo.toml
    checks: list = field(default_factory=list)


def state_dump_function() -> str:
    skip = " ".join(sorted(BASH_INTERNALS))
    return textwrap.dedent(
        f"""\
        __cb_dump() {{
          local __cb_name
          for __cb_name in $(compgen -v); do
            case " {skip} " in *" $__cb_name "*) continue ;; esac
            case "$__cb_name" in __cb_*|__CB_*|STUB_*) continue ;; esac
            __cb_decl="$(declare -p "$__cb_name" 2>/dev/null)" || continue
            __cb_flags="${{__cb_decl#declare -}}"
            # readonly variables (bash's own) cannot be restored, so skip them
            case "${{__cb_flags%% *}}" in *r*) continue ;; esac
            printf '%s\n' "$__cb_decl"
          done > "$__CB_STATE_OUT"
        }}
        trap __cb_dump EXIT
        """
    )


def phase_script(commands: list[str]) -> str:
    parts = [state_dump_function(), '[ -f "$__CB_STATE_IN" ] && . "$__CB_STATE_IN"\n']
    for i, command in enumerate(commands, 1):
        parts.append(f"# --- command {i}\n{command}\n")
        parts.append(
            "__cb_rc=$?\n"
            'if [ "$__cb_rc" -ne 0 ]; then\n'
            f"  echo \"[buildspec_test] command {i} failed with exit status $__cb_rc\" >&2\n"
            '  exit "$__cb_rc"\n'
            "fi\n"
        )
    return "".join(parts)


def run_buildspec(spec: dict, scenario: Scenario, tmp: Path) -> Run:
    src = tmp / "src"
    shutil.copytree(
        REPO, src, ignore=shutil.ignore_patterns(".git", "target", "bench", "node_modules")
    )
    if scenario.cargo_toml is not None:
        (src / "Cargo.toml").write_text(scenario.cargo_toml)
    stubs = tmp / "stubs"
    stubs.mkdir()
    for tool in ("aws", "docker", "cargo", "curl"):
        path = stubs / tool
        path.write_text(STUB.format(python=sys.executable, tool=tool, password=STUB_PASSWORD))
        path.chmod(0o755)
    log = tmp / "calls.jsonl"
    log.touch()
    home = tmp / "home"
    home.mkdir()

    env = {
        "PATH": f"{stubs}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "STUB_LOG": str(log),
        "STUB_FAIL": scenario.stub_fail,
        # What CodeBuild itself provides.
        "CODEBUILD_SRC_DIR": str(src),
        "CODEBUILD_RESOLVED_SOURCE_VERSION": COMMIT,
        "CODEBUILD_SOURCE_REPO_URL": "https://example.com/coworking-gateway.git",
        "CODEBUILD_BUILD_SUCCEEDING": "1",
    }
    for key, value in ((spec.get("env") or {}).get("variables") or {}).items():
        env[key] = str(value)
    env.update(scenario.project_env)

    state = tmp / "state.sh"
    phases_run: list[str] = []
    output: list[str] = []
    ok = True
    for phase in PHASES:
        body = (spec.get("phases") or {}).get(phase)
        if not body:
            continue
        phases_run.append(phase)
        script = tmp / f"{phase}.sh"
        script.write_text(phase_script([str(c) for c in body.get("commands") or []]))
        new_state = tmp / f"state.{phase}.sh"
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", str(script)],
            cwd=src,
            env={**env, "__CB_STATE_IN": str(state), "__CB_STATE_OUT": str(new_state)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        output.append(f"--- {phase} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
        if new_state.exists():
            shutil.copy(new_state, state)
        if proc.returncode != 0:
            ok = False
            env["CODEBUILD_BUILD_SUCCEEDING"] = "0"
            on_failure = body.get("on-failure")
            if on_failure == "ABORT":
                break
            if on_failure != "CONTINUE" and phase in ("install", "pre_build"):
                break
        # The next phase's shell must see the updated flag, not the carried-over one.
        with state.open("a") as f:
            f.write(f"CODEBUILD_BUILD_SUCCEEDING={env['CODEBUILD_BUILD_SUCCEEDING']}\n")
    calls = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return Run(ok, phases_run, calls, src, "".join(output))


# ---- helpers for assertions -------------------------------------------------

def find(calls: list[dict], tool: str, *prefix: str) -> list[int]:
    return [
        i for i, c in enumerate(calls)
        if c["tool"] == tool and c["argv"][: len(prefix)] == list(prefix)
    ]


def option_values(argv: list[str], *names: str) -> list[str]:
    values = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                values.append(argv[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg[len(name) + 1:])
    return values


def check_success(run: Run, version: str, artifact_files: list[str]) -> list[str]:
    errors: list[str] = []
    registry = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
    image = f"{registry}/{REPO_NAME}"
    tags = [f"{image}:{version}", f"{image}:{version}-{COMMIT[:7]}"]
    calls = run.calls

    if not run.ok:
        errors.append("the build reported failure")
    if run.phases_run != list(PHASES):
        errors.append(f"phases run {run.phases_run}, expected {list(PHASES)}")

    pw = find(calls, "aws", "ecr", "get-login-password")
    if not pw:
        errors.append("no `aws ecr get-login-password` call")
    elif option_values(calls[pw[0]]["argv"], "--region") != [REGION]:
        errors.append(f"get-login-password region: {calls[pw[0]]['argv']}")
    logins = find(calls, "docker", "login")
    if len(logins) != 1:
        errors.append(f"expected one `docker login`, got {len(logins)}")
    else:
        argv = calls[logins[0]]["argv"]
        if argv[-1] != registry:
            errors.append(f"docker login registry {argv[-1]!r}, expected {registry!r}")
        if option_values(argv, "--username", "-u") != ["AWS"]:
            errors.append(f"docker login username: {argv}")
        if "--password-stdin" not in argv:
            errors.append("docker login does not read the password from stdin")
        if calls[logins[0]].get("stdin", "").strip() != STUB_PASSWORD:
            errors.append("docker login did not receive the ECR password on stdin")

    tests = find(calls, "cargo", "test")
    builds = find(calls, "docker", "build")
    pushes = find(calls, "docker", "push")
    if not tests:
        errors.append("no `cargo test` before the image build")
    if len(builds) != 1:
        errors.append(f"expected one `docker build`, got {len(builds)}")
    else:
        argv = calls[builds[0]]["argv"]
        got_tags = option_values(argv, "--tag", "-t")
        if sorted(got_tags) != sorted(tags):
            errors.append(f"docker build tags {got_tags}, expected {tags}")
        args = option_values(argv, "--build-arg")
        for want in (f"VERSION={version}", f"REVISION={COMMIT}"):
            if want not in args:
                errors.append(f"docker build lacks --build-arg {want} (has {args})")
        if not any(a.startswith("SOURCE_URL=") for a in args):
            errors.append("docker build lacks --build-arg SOURCE_URL")
        if argv[-1] != ".":
            errors.append(f"docker build context {argv[-1]!r}, expected '.'")
        if tests and tests[0] > builds[0]:
            errors.append("`cargo test` ran after `docker build`")
        if logins and logins[0] > builds[0]:
            errors.append("docker login ran after docker build")
    pushed = [calls[i]["argv"][-1] for i in pushes]
    if sorted(pushed) != sorted(tags):
        errors.append(f"pushed {pushed}, expected {tags}")
    if builds and pushes and min(pushes) < builds[0]:
        errors.append("a push happened before the image build")

    if "imagedefinitions.json" not in artifact_files:
        errors.append(f"artifacts.files {artifact_files} does not list imagedefinitions.json")
    art = run.workdir / "imagedefinitions.json"
    if not art.exists():
        errors.append("imagedefinitions.json was not written")
    else:
        try:
            defs = json.loads(art.read_text())
            uris = [d.get("imageUri") for d in defs]
            if uris != [tags[1]]:
                errors.append(f"imagedefinitions.json names {uris}, expected [{tags[1]!r}]")
            if defs[0].get("name") != "coworking-gateway":
                errors.append(f"imagedefinitions.json container name {defs[0].get('name')!r}")
        except (ValueError, AttributeError, IndexError, TypeError) as e:
            errors.append(f"imagedefinitions.json is not a JSON list of images: {e}")
    return errors


def check_stopped(run: Run, *, expect_build_call: bool, expect_post_build: bool = False,
                  expect_no_tool_calls: bool = False) -> list[str]:
    errors: list[str] = []
    calls = run.calls
    if run.ok:
        errors.append("the build reported success")
    if find(calls, "docker", "push"):
        errors.append("`docker push` was called after a failure")
    if (run.workdir / "imagedefinitions.json").exists():
        errors.append("imagedefinitions.json was written after a failure")
    if expect_build_call and not find(calls, "docker", "build"):
        errors.append("`docker build` was never reached (scenario did not test what it meant to)")
    if not expect_build_call and find(calls, "docker", "build"):
        errors.append("`docker build` ran although the tests failed")
    if expect_post_build and "post_build" not in run.phases_run:
        errors.append("post_build did not run, so its guard was not exercised")
    if not expect_post_build and "post_build" in run.phases_run:
        errors.append("post_build ran although the failing phase should abort the build")
    if expect_no_tool_calls and any(c["tool"] in ("aws", "docker") for c in calls):
        errors.append(f"aws/docker called without the required variables: {calls}")
    return errors


def main() -> int:
    spec_path = REPO / "buildspec.yml"
    spec = yaml.safe_load(spec_path.read_text())
    version = expected_version(REPO / "Cargo.toml")
    artifact_files = [str(f) for f in ((spec.get("artifacts") or {}).get("files") or [])]
    project_env = {
        "AWS_ACCOUNT_ID": ACCOUNT,
        "AWS_DEFAULT_REGION": REGION,
        "IMAGE_REPO_NAME": REPO_NAME,
    }
    print(f"buildspec_test: {spec_path.relative_to(REPO)}, version {version} (from Cargo.toml)")

    if str(spec.get("version")) != "0.2":
        print(f"FAIL buildspec version is {spec.get('version')!r}, expected 0.2")
        print("buildspec: 0 passed, 1 failed")
        return 1

    def drop_build_abort(s: dict) -> None:
        s["phases"]["build"].pop("on-failure", None)

    plain_manifest = textwrap.dedent(
        """\
        [package]
        name = "coworking-gateway"
        version = "2.3.4"
        edition = "2024"

        [dependencies]
        serde = { version = "1.0.200" }
        """
    )

    scenarios = [
        ("good build: login, test, build, two tags, two pushes, artifact",
         Scenario("ok", project_env),
         lambda r, v: check_success(r, v, artifact_files)),
        ("version from [package] in a non-workspace Cargo.toml",
         Scenario("plain-manifest", project_env, cargo_toml=plain_manifest),
         lambda r, v: check_success(r, "2.3.4", artifact_files)),
        ("failing `cargo test` stops before docker build and push",
         Scenario("tests-fail", project_env, stub_fail="cargo test"),
         lambda r, v: check_stopped(r, expect_build_call=False)),
        ("failing `docker build` stops before any push",
         Scenario("build-fails", project_env, stub_fail="docker build"),
         lambda r, v: check_stopped(r, expect_build_call=True)),
        ("without on-failure: ABORT, post_build's guard still refuses to push",
         Scenario("guard-only", project_env, stub_fail="docker build", mutate=drop_build_abort),
         lambda r, v: check_stopped(r, expect_build_call=True, expect_post_build=True)),
        ("missing AWS_ACCOUNT_ID stops in pre_build, before login",
         Scenario("no-account", {k: v for k, v in project_env.items() if k != "AWS_ACCOUNT_ID"}),
         lambda r, v: check_stopped(r, expect_build_call=False, expect_no_tool_calls=True)),
    ]

    passed = failed = 0
    for title, scenario, check in scenarios:
        scenario_spec = copy.deepcopy(spec)
        if scenario.mutate:
            scenario.mutate(scenario_spec)
        with tempfile.TemporaryDirectory(prefix=f"buildspec-{scenario.name}-") as tmp:
            run = run_buildspec(scenario_spec, scenario, Path(tmp))
            errors = check(run, version)
            if errors:
                failed += 1
                print(f"FAIL {title}")
                for e in errors:
                    print(f"     - {e}")
                print(textwrap.indent(run.output.rstrip(), "     | "))
                print("     calls:")
                for c in run.calls:
                    print(f"       {c['tool']} {' '.join(c['argv'])}")
            else:
                passed += 1
                tools = ", ".join(f"{c['tool']} {c['argv'][0]}" for c in run.calls)
                print(f"ok   {title}")
                print(f"     phases: {' -> '.join(run.phases_run)}; calls: {tools}")
    print(f"buildspec: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
