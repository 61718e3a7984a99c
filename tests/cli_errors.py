"""The bad-input contract of every command, as one assertion: exit 2, one line, no traceback."""

from __future__ import annotations


def assert_one_line_error(result, *needles) -> str:
    """result (a CliRunner result) ended in exit 2 with one `error: ...` line, the last line written,
    and no traceback; every needle is in that line. Returns the line.

    Progress lines of the work done before the error (the log on stderr) may precede it; a message
    spread over several lines would leave its tail after the `error:` line and fail here.
    """
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1, f"{len(errors)} error lines:\n{result.output}"
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last == errors[0] and last.startswith("error: "), f"the error is not the last line:\n{result.stderr}"
    for needle in needles:
        assert str(needle) in last, (needle, last)
    return last
