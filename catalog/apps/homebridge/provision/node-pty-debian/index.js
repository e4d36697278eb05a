"use strict";
// PVE App Store stand-in for @homebridge/node-pty-prebuilt-multiarch: the Homebridge UI's terminal
// and log views only need node-pty's API, which Debian's node-node-pty provides (built for Debian's
// Node.js and found in /usr/lib/<triplet>/nodejs through Debian's module path).
const pty = require("node-pty");

exports.spawn = pty.spawn;
exports.fork = pty.fork;
exports.createTerminal = pty.createTerminal;
exports.open = pty.open;
exports.native = pty.native;
