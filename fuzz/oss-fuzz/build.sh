#!/bin/bash -eu
# OSS-Fuzz build script for muxql: builds every cargo-fuzz target and installs it in $OUT with
# its seed corpus (fuzz/seeds/TARGET, recorded from real traffic by scripts/fuzz-seeds) and its
# dictionary (fuzz/dict, mapped in fuzz/dict/README). Also runs outside OSS-Fuzz:
#   SRC=/path/containing/muxql OUT=/tmp/out bash fuzz/oss-fuzz/build.sh
cd "$SRC/muxql"
# OSS-Fuzz provides a nightly compiler; elsewhere stable accepts the sanitizer flags with this.
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O --debug-assertions
release=fuzz/target/x86_64-unknown-linux-gnu/release
for target in $(cargo fuzz list); do
  cp "$release/$target" "$OUT/"
  if [ -d "fuzz/seeds/$target" ]; then
    (cd "fuzz/seeds/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
  fi
  case $target in
    sql_lexers) dict=sql ;;
    mysql_* | engine_mysql) dict=mysql ;;
    c_abi) dict=none ;;
    *) dict=pg ;;
  esac
  if [ -f "fuzz/dict/$dict.dict" ]; then
    cp "fuzz/dict/$dict.dict" "$OUT/$target.dict"
  fi
done
