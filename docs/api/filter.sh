#!/bin/sh
# doxygen INPUT_FILTER: plain C comments in headers become documentation
# comments (a comment before a declaration documents it; one after a
# member or enumerator on its line documents that member).  Markdown pages
# pass through unchanged.
case $1 in
*.h)
  sed -e '1s|^/\* tyr/|/** @file tyr/|' -e 's|^\([[:space:]]*\)/\*\([^*]\)|\1/**\2|' \
    -e 's|\([;,{]\)[[:space:]]*/\*\([^*]\)|\1 /**<\2|' "$1"
  ;;
*) cat "$1" ;;
esac
