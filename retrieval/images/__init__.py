"""Image files: finding and decoding them safely, labelled sets, HTML galleries."""
