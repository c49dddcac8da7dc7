// fail: an app that fails on purpose: a message on stderr, exit code 3.
process.stderr.write("fail: this app always fails\n");
process.exit(3);
