"""Personal data: finding it in text and replacing it before anything keeps or logs it."""
