"""`dlrecap serve`: a local web page that lists runs and shows any run, live while it trains.

`views` reads run directories into JSON-ready data, `server` answers HTTP requests with it
(127.0.0.1 only), and `static/` holds the page itself, which draws the learning curves and
the boundary animation in the browser. Training knows nothing of it: the page only reads
the files a run directory holds.
"""
