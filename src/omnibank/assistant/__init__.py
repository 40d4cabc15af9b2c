"""The answering assistant (S3): questions answered from the FAQ and the benefits' own terms, any hour."""
