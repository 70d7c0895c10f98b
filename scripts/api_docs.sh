#!/usr/bin/env bash
# scripts/api_docs.sh — the API reference, built by Doxygen from the public headers' doc comments.
#   bash scripts/api_docs.sh [--out DIR] [--strict]
# Writes DIR/html/index.html (default DIR: build/api) and reports every public name that has no doc
# comment ("undocumented: FILE:LINE: NAME"), then how many. --strict: exit 1 when there is any.
# The public headers are those <rewind.hpp> includes: core/, autograd/, nn/, optim/, train/, comm/
# (not kernels/, the internal compute layer, nor any detail/ folder or namespace).
# Installs Doxygen (Debian's doxygen) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

out=build/api
strict=0
while (($#)); do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --strict) strict=1; shift ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "api_docs.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

rewind_install_packages doxygen
mkdir -p "$out"
log="$out/warnings.log"
# The settings that matter: only documented names get pages (EXTRACT_ALL=NO), and every public name
# without a comment is a warning (WARN_IF_UNDOCUMENTED). `///` and `///<` are Doxygen comments as
# they are; the plain `//` comments that explain the how are not.
doxygen - >/dev/null <<DOXY
PROJECT_NAME           = rewind
PROJECT_BRIEF          = "Tape-based reverse-mode autodiff for recurrent models, in C++20"
OUTPUT_DIRECTORY       = $out
INPUT                  = rewind.hpp core autograd nn optim train comm README.md
USE_MDFILE_AS_MAINPAGE = README.md
FILE_PATTERNS          = *.hpp
RECURSIVE              = YES
EXCLUDE_PATTERNS       = */detail/*
EXCLUDE_SYMBOLS        = detail rwd::detail rwd::kernels
EXTRACT_ALL            = NO
EXTRACT_PRIVATE        = NO
EXTRACT_STATIC         = NO
HIDE_UNDOC_MEMBERS     = NO
WARN_IF_UNDOCUMENTED   = YES
WARN_IF_DOC_ERROR      = NO
WARN_NO_PARAMDOC       = NO
WARN_LOGFILE           = $log
QUIET                  = YES
GENERATE_HTML          = YES
GENERATE_LATEX         = NO
HAVE_DOT               = NO
MARKDOWN_SUPPORT       = YES
JAVADOC_AUTOBRIEF      = NO
BUILTIN_STL_SUPPORT    = YES
DOXY

# "FILE:LINE: warning: Member NAME (function) of class X is not documented." → FILE:LINE: NAME …
pattern='is not documented'
count=$( (grep "$pattern" "$log" || true) | sort -u | wc -l)
grep "$pattern" "$log" | sed -E "s|^$PWD/||; s/: warning: / /; s/ is not documented\.//" | sort -u | sed 's/^/undocumented: /' || true
echo "api_docs.sh: $out/html/index.html; $count public names without a doc comment"
if ((strict && count > 0)); then exit 1; fi
