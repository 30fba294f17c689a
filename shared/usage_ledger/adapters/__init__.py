"""The only code that talks to AWS (DynamoDB, SQS, SES) and to the payment gateway."""
