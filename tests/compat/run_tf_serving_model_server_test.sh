#!/bin/sh
# Runs TF Serving's own model-server integration test, unmodified, against
# `rollouts serve`: tensorflow_serving/model_servers/tensorflow_model_server_test.py
# from a checkout of github.com/tensorflow/serving, with that checkout's testdata.
# Nothing of TF Serving lives in this project; give the checkout's path:
#
#   git clone --depth 1 https://github.com/tensorflow/serving /tmp/tfs
#   tests/compat/run_tf_serving_model_server_test.sh /tmp/tfs [TestName ...]
#
# It lays out what the test expects under $TEST_SRCDIR (a `tensorflow_model_server`
# shim that execs `rollouts serve`, and the testdata), puts the test's
# `tensorflow_serving.model_servers` package beside the installed
# tensorflow-serving-api, and runs each test in its own process (the test keeps
# every server it starts alive until its process exits). portpicker must be
# importable (pip install portpicker). Results: one line per test, and logs in
# $WORK/logs. TF Lite and TF Text tests need what this server does not have.
set -eu
CHECKOUT=$(cd "$1" && pwd); shift
PROJECT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-$PROJECT/.venv/bin/python}
WORK=${WORK:-$(mktemp -d)}
TEST=$CHECKOUT/tensorflow_serving/model_servers/tensorflow_model_server_test.py
API=$("$PYTHON" -c 'import os, tensorflow_serving.apis as a; print(os.path.dirname(os.path.dirname(a.__file__)))')

SRC=$WORK/srcdir/tf_serving/tensorflow_serving
mkdir -p "$SRC/model_servers" "$SRC/servables/tensorflow" "$WORK/py/tensorflow_serving" "$WORK/logs"
ln -sfn "$CHECKOUT/tensorflow_serving/servables/tensorflow/testdata" "$SRC/servables/tensorflow/testdata"
touch "$WORK/py/tensorflow_serving/__init__.py"
ln -sfn "$API/apis" "$WORK/py/tensorflow_serving/apis"
ln -sfn "$API/config" "$WORK/py/tensorflow_serving/config"
ln -sfn "$CHECKOUT/tensorflow_serving/model_servers" "$WORK/py/tensorflow_serving/model_servers"
cat > "$SRC/model_servers/tensorflow_model_server" <<SHIM
#!/bin/sh
PYTHONPATH=$PROJECT exec $PYTHON -m serving --bind_address=127.0.0.1 "\$@"
SHIM
chmod +x "$SRC/model_servers/tensorflow_model_server"

if [ $# -eq 0 ]; then
  set -- $(sed -n 's/^  def \(test[A-Za-z0-9_]*\)(.*/\1/p' "$TEST")
fi
for name in "$@"; do
  if TEST_SRCDIR=$WORK/srcdir PYTHONPATH=$WORK/py${PYTHONPATH:+:$PYTHONPATH} \
      TF_CPP_MIN_LOG_LEVEL=2 timeout 300 "$PYTHON" "$TEST" "TensorflowModelServerTest.$name" \
      > "$WORK/logs/$name.txt" 2>&1; then
    echo "PASS $name"
  else
    echo "FAIL $name (log: $WORK/logs/$name.txt)"
  fi
done
