"""The serve command: the warm engine (``spine_analysis.jobs``) on stdin and stdout."""
from __future__ import annotations


def _cmd_serve(args) -> int:
    from ..jobs import main as serve_main

    return serve_main()


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="keep the engine warm: answer JSON requests on stdin, one per line",
                       description='Reads one JSON request per line on stdin, e.g. {"image": "xray.png"} '
                                   '(optional: "force", "out_dir", "weights", "patient_right_on_image_left", "frame"), '
                                   'and answers with JSON lines on stdout: {"status": "progress", ...} lines, then '
                                   'one {"status": "done", ...report, "landmarks", "flags"} or {"status": "error", '
                                   '"message": ...}. The model stays loaded, so only the first request pays the '
                                   'start-up. Ends when stdin closes. CT jobs: see spine_analysis.jobs.')
    p.set_defaults(func=_cmd_serve)
