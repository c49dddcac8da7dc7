// Public exports of the iexec-p2p package.
export {}
