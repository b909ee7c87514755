"""The pages: render.py the channel list and the watch page (templates/, security headers,
setup() adds it all to the app), embeds.py the pages made for another site's iframe, assets.py
the files under static/ under content-hashed names."""
