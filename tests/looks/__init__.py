"""`make looks`: how well the shipped patches follow the music (see __main__)."""
