"""The pages: render.py the channel list and the watch page (templates/, security headers,
setup() adds it all to the app), assets.py the files under static/ under content-hashed names."""
